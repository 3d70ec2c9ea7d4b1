// Package bench implements Scanorama's benchmark cases (see docs/DESIGN.md,
// § Benchmarks), run by cmd/scanorama-bench and `make bench`.
//
// Every case runs the real scanorama-controller binary (built by the bench)
// against a managed PostgreSQL that the bench starts itself with
// controller/pgserver in a temporary directory, with pgserver's durable
// default settings (fsync and synchronous_commit on). Each case measures the
// product path and, where the design asks for one, a baseline doing the same
// work the most direct way in the same run, on a fresh database of the same
// schema. Results are ratios against those baselines, never absolute
// thresholds on time.
//
// Cases (names are fixed; `--case` takes a name or a group):
//
//	group ingest:   ingest_vs_copy, controller_ingest_peak_rss_mb
//	group lease:    lease_throughput_vs_sql, lease_throughput_vs_bare_sql
//	group dispatch: dispatch_latency_p50_ms, dispatch_latency_p99_ms
//	group agent:    agent_overhead_vs_nmap, agent_rss_growth_mb
//	group feed:     change_feed_lag_p99_ms, webhook_latency_p99_ms, webhook_burst_50k_vs_bare
//	group scale:    list_hosts_cidr_p99_ms, get_host_p99_ms, list_host_changes_p99_ms,
//	                ingest_month12_vs_month1, retention_month_s
//
// The scale group (`make bench-data`) generates a year of data once, server
// side (scaledata.go, scalelayout.go): --scale-hosts hosts (1M) over
// --scale-sites sites (4): "bench" in 10.99.0.0/16, the others each in a /108
// of the IPv6 documentation prefix 2001:db8::/32 (rows only, never probed),
// 12 monthly port_scans partitions of --scale-month-rows rows each (1.7M),
// their jobs, services and host_history. On it, it times admin
// reads through the controller's AdminService, the 1M-row ingest against the
// same ingest into an empty database, and last, archiving the oldest month.
//
// The agent group needs root, iproute2 with network namespace support, veth
// links and nmap. It only ever probes addresses inside two namespaces it
// creates (10.99.0.0/16 on a veth pair between them), never touches the host's
// interfaces, routes or ip_forward, and deletes the namespaces and the
// processes it started, by name and PID, when it ends.
package bench
