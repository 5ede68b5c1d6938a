package webhook

// CountListeners is countListeners, for the tests.
var CountListeners = countListeners
