package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// batchWriter writes the server's log lines in batches: when 32 KiB are waiting, at least
// every interval, and on Close. One line per TokenReview would otherwise cost one write system
// call per request, a fifth of the server's CPU time under load (docs/performance.md). A
// crash loses at most the last interval's lines; a clean stop loses none.
type batchWriter struct {
	mu   sync.Mutex
	buf  *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newBatchWriter(w io.Writer, interval time.Duration) *batchWriter {
	b := &batchWriter{buf: bufio.NewWriterSize(w, 32<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushEvery(interval)
	return b
}

func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *batchWriter) flushEvery(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.flush()
		}
	}
}

func (b *batchWriter) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Flush()
}

// Close writes what is waiting and stops the periodic flush.
func (b *batchWriter) Close() error {
	close(b.stop)
	<-b.done
	return b.flush()
}
