package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/scanorama/scanorama/controller/maintenance"
)

// retentionFlags are serve's --history-retention, --job-retention,
// --archive-retention and --webhook-delivery-retention.
type retentionFlags struct {
	history, jobs, archive, deliveries retentionValue
}

// retentionValue is a duration that also takes days ("400d"); "0" keeps
// everything.
type retentionValue struct {
	d time.Duration
}

const maxRetention = 100 * 366 * 24 * time.Hour

func (v *retentionValue) String() string {
	if v == nil || v.d == 0 {
		return "0"
	}
	if v.d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", v.d/(24*time.Hour))
	}
	return v.d.String()
}

func (v *retentionValue) Set(s string) error {
	s = strings.TrimSpace(s)
	var d time.Duration
	switch {
	case s == "0":
	case strings.HasSuffix(s, "d"):
		n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
		if err != nil {
			return fmt.Errorf("%q is not a number of days like \"400d\"", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	default:
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return fmt.Errorf("%q is not a duration like \"400d\" or \"720h\" (0 keeps everything)", s)
		}
	}
	if d < 0 || (d > 0 && d < time.Hour) || d > maxRetention {
		return fmt.Errorf("%q is outside 1h..100 years (0 keeps everything)", s)
	}
	v.d = d
	return nil
}

func registerRetention(fs *flag.FlagSet) *retentionFlags {
	r := &retentionFlags{}
	for _, f := range []struct {
		v          *retentionValue
		name, env  string
		def, usage string
	}{
		{&r.history, "history-retention", "SCANORAMA_HISTORY_RETENTION", "730d",
			"host changes (host_history) older than this are deleted; 0 keeps all"},
		{&r.jobs, "job-retention", "SCANORAMA_JOB_RETENTION", "400d",
			"finished jobs (with their leases) and runs older than this are deleted once no port_scans row refers to them; 0 keeps all"},
		{&r.archive, "archive-retention", "SCANORAMA_ARCHIVE_RETENTION", "0",
			"archived port_scans months (schema archive) are dropped this long after they ended; 0 keeps them"},
		{&r.deliveries, "webhook-delivery-retention", "SCANORAMA_WEBHOOK_DELIVERY_RETENTION", "30d",
			"webhook deliveries delivered longer ago than this are deleted (pending and dead ones stay); 0 keeps all"},
	} {
		def := env(f.env, f.def)
		if err := f.v.Set(def); err != nil {
			// A bad environment value is reported like a bad flag: Parse
			// sees it again through the flag's default text.
			f.v.d = -1
		}
		fs.Var(f.v, f.name, f.usage+" (e.g. 400d, 720h; env "+f.env+")")
	}
	return r
}

// check reports a bad value that came from the environment.
func (r *retentionFlags) check() error {
	for name, v := range map[string]*retentionValue{
		"--history-retention": &r.history, "--job-retention": &r.jobs, "--archive-retention": &r.archive,
		"--webhook-delivery-retention": &r.deliveries,
	} {
		if v.d < 0 {
			return fmt.Errorf("%s: bad value in the environment; use e.g. 400d, 720h or 0", name)
		}
	}
	return nil
}

// Retention is the maintenance setting.
func (r *retentionFlags) Retention() maintenance.Retention {
	return maintenance.Retention{History: r.history.d, Jobs: r.jobs.d, Archive: r.archive.d, Deliveries: r.deliveries.d}
}
