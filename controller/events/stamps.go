package events

// siteStamps counts events per site with one counter: each site (and
// "every site") holds the count at its last event, so "anything in site
// since count n" is one comparison. The hub keeps two: wake-ups (Quiet) and
// announcements (Announced). Caller holds the hub's mu.
type siteStamps struct {
	n    uint64
	site map[string]uint64
	all  uint64
}

// mark records an event in site ("" = every site).
func (s *siteStamps) mark(site string) {
	s.n++
	if site == "" {
		s.all = s.n
		return
	}
	if s.site == nil {
		s.site = map[string]uint64{}
	}
	s.site[site] = s.n
}

// at is the count at site's last event, its own or every site's.
func (s *siteStamps) at(site string) uint64 { return max(s.all, s.site[site]) }

// forget drops the sites whose last event is at or before n: at(site)
// still reports no event after n for them.
func (s *siteStamps) forget(n uint64) {
	for site, m := range s.site {
		if m <= n {
			delete(s.site, site)
		}
	}
}
