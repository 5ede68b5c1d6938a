package mapping

import "slices"

// SetIssuers changes the issuer URLs entries may name, after a reconfiguration added or
// removed issuers, and judges the newest version from the source again under them: a version
// refused for naming an issuer that is now configured is accepted, and a version in force that
// names an issuer no longer configured is refused (the mapping in force stays, and the refusal
// says which entry to fix). Nothing happens when the issuers are the same.
func (s *Store) SetIssuers(issuers []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Equal(slices.Sorted(slices.Values(issuers)), slices.Sorted(slices.Values(s.opts.Issuers))) {
		return
	}
	s.opts.Issuers = slices.Clone(issuers)
	snap := s.last
	if snap == nil || snap.Deleted || snap.Err != nil {
		return
	}
	old := s.cur.Load()
	start := s.now()
	m, err := ParseSet(snapshotParts(*snap), ParseOptions{Issuers: s.opts.Issuers})
	took := s.now().Sub(start)
	if err != nil {
		if old.refused != nil && old.refused.version == snap.Version {
			old = s.withoutRefusal(old) // judged again: report the new reason
		}
		s.refuse(old, *snap, err, took)
		return
	}
	s.accept(old, *snap, m, took)
}

// withoutRefusal is st without its refused version.
func (s *Store) withoutRefusal(st *storeState) *storeState {
	next := *st
	next.refused = nil
	return &next
}
