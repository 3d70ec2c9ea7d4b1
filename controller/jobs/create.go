// Package jobs owns turning a target into leasable scan jobs: freezing the
// effective options (profile plus the target's ports), collecting the
// exclusions that apply (global, site, target, hosts marked
// ignore_scanning), and sharding large networks into jobs of a bounded
// number of addresses so agents of one site scan them in parallel and no
// single job's results grow without bound.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/scanorama/scanorama/agent/scanspec"
	"github.com/scanorama/scanorama/agent/scanspec/specpb"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Shard sizes: an IPv4 job covers at most a /24, an IPv6 job a /120 (256
// addresses each).
const (
	ShardBitsV4 = 24
	ShardBitsV6 = 120
	// MaxShards bounds how many jobs one run may create.
	MaxShards = 4096
)

// DefaultMaxAttempts is how often a job is leased before it fails for good.
const DefaultMaxAttempts = 3

// ErrNoPorts means neither the target nor its profile says which ports to scan.
var ErrNoPorts = errors.New("no ports: give the target ports or use a profile with ports or top_ports")

// Request describes the jobs of one run (or one phase of a run) of a target.
type Request struct {
	Target    db.ScanTarget
	Profile   db.ScanProfile
	CreatedBy string
	// Reason is recorded in the jobs' execution_context (e.g. "scan_now", "schedule").
	Reason string
	// RunID ties the jobs to their scan_runs row; unset leaves them unattached.
	RunID uuid.NullUUID
	// Phase is recorded in the jobs' execution_context ("discovery" or
	// "port_scan"); empty records none.
	Phase string
	// OnlyHosts restricts the jobs to Hosts (the hosts a discovery found
	// up) instead of the whole target network. Each shard of the network
	// that holds at least one of them becomes one job whose network is the
	// smallest prefix covering them (a /32 or /128 for a single host) and
	// whose exclusions are every other address of that prefix; shards with
	// none of them get no job. So such a run has at most as many jobs as a
	// full one, each of at most 256 addresses.
	OnlyHosts bool
	Hosts     []netip.Addr
}

type execContext struct {
	Reason  string `json:"reason"`
	Shards  int    `json:"shards"`
	Phase   string `json:"phase,omitempty"`
	RunID   string `json:"run_id,omitempty"`
	HostsUp *int   `json:"hosts_up,omitempty"`
}

// EffectiveOptions merges a profile with a target's own ports.
func EffectiveOptions(p db.ScanProfile, targetPorts string) (scanspec.Options, error) {
	in, err := ProfileOptions(p)
	if err != nil {
		return scanspec.Options{}, err
	}
	if targetPorts != "" && in.GetScanType() != pb.ScanType_SCAN_TYPE_PING {
		in.Ports, in.TopPorts = targetPorts, 0
	}
	if in.GetPorts() == "" && in.GetTopPorts() == 0 && in.GetScanType() != pb.ScanType_SCAN_TYPE_PING {
		return scanspec.Options{}, ErrNoPorts
	}
	return specpb.FromPB(in)
}

// ProfileOptions is a profile row as the API's ScanOptions. A scan type or
// ping method the API has no value for is an error (the schema's CHECK and
// the tests of specpb keep that from happening).
func ProfileOptions(p db.ScanProfile) (*pb.ScanOptions, error) {
	scanType, err := specpb.ScanTypeToPB(scanspec.ScanType(p.ScanType))
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", p.Name, err)
	}
	o := &pb.ScanOptions{
		ScanType:          scanType,
		Ports:             p.Ports,
		TopPorts:          p.TopPorts,
		ServiceDetection:  p.ServiceDetection,
		VersionLight:      p.VersionLight,
		OsDetection:       p.OsDetection,
		MinRate:           p.MinRate,
		MaxRate:           p.MaxRate,
		Scripts:           p.Scripts,
		SkipHostDiscovery: p.SkipHostDiscovery,
	}
	if p.VersionIntensity.Valid {
		v := int32(p.VersionIntensity.Int16)
		o.VersionIntensity = &v
	}
	if p.Timing.Valid {
		v := int32(p.Timing.Int16)
		o.Timing = &v
	}
	if p.MaxRetries.Valid {
		v := int32(p.MaxRetries.Int16)
		o.MaxRetries = &v
	}
	if p.HostTimeoutSeconds > 0 {
		o.HostTimeout = durationSeconds(p.HostTimeoutSeconds)
	}
	for _, m := range p.PingMethods {
		pm, err := specpb.PingMethodToPB(scanspec.PingMethod(m))
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", p.Name, err)
		}
		o.PingMethods = append(o.PingMethods, pm)
	}
	return o, nil
}

// Create inserts the jobs of one run in q's transaction and notifies the
// site's agents (delivered at commit).
func Create(ctx context.Context, q *db.Queries, r Request) ([]db.ScanJob, error) {
	ports, err := TargetPorts(ctx, q, r.Target.ID)
	if err != nil {
		return nil, err
	}
	opts, err := EffectiveOptions(r.Profile, ports)
	if err != nil {
		return nil, err
	}
	excl, err := exclusions(ctx, q, r.Target)
	if err != nil {
		return nil, err
	}
	shards, err := Shard(r.Target.Network)
	if err != nil {
		return nil, err
	}
	optJSON, err := protojson.Marshal(specpb.ToPB(opts))
	if err != nil {
		return nil, fmt.Errorf("encode options: %w", err)
	}
	ec := execContext{Reason: r.Reason, Shards: len(shards), Phase: r.Phase}
	if r.RunID.Valid {
		ec.RunID = r.RunID.UUID.String()
	}
	var hosts []netip.Addr
	if r.OnlyHosts {
		hosts = slices.Clone(r.Hosts)
		slices.SortFunc(hosts, netip.Addr.Compare)
		hosts = slices.Compact(hosts)
		n := len(hosts)
		ec.HostsUp = &n
	}
	ctxJSON, err := json.Marshal(ec)
	if err != nil {
		return nil, fmt.Errorf("encode execution context: %w", err)
	}
	var nets []netip.Prefix
	var excls []string
	for _, shard := range shards {
		network, shardExcl := shard, overlapping(excl, shard)
		if covered(shardExcl, shard) {
			continue // everything in this shard is excluded
		}
		if r.OnlyHosts {
			var ok bool
			if network, shardExcl, ok = hostJob(shard, hostsIn(hosts, shard), shardExcl); !ok {
				continue // no host of this shard is up
			}
		}
		nets = append(nets, network)
		excls = append(excls, cidrArray(shardExcl))
	}
	if len(nets) == 0 {
		return []db.ScanJob{}, nil
	}
	out, err := q.InsertRunJobs(ctx, db.InsertRunJobsParams{
		TargetID: r.Target.ID, SiteID: r.Target.SiteID, ProfileID: r.Profile.ID,
		Ports: opts.Ports.String(), Options: optJSON,
		RequiresRaw: opts.RequiresRawSockets(), MaxAttempts: DefaultMaxAttempts, Priority: 0,
		CreatedBy: r.CreatedBy, ExecutionContext: ctxJSON, RunID: r.RunID,
		Networks: nets, Exclusions: excls,
	})
	if err != nil {
		return nil, fmt.Errorf("insert %d jobs: %w", len(nets), err)
	}
	if len(out) != len(nets) {
		return nil, fmt.Errorf("insert %d jobs: %d rows came back", len(nets), len(out))
	}
	if err := q.NotifyJobsAvailable(ctx, r.Target.SiteID.String()); err != nil {
		return nil, fmt.Errorf("notify site: %w", err)
	}
	return out, nil
}

// TargetPorts returns a target's normalized ports as a canonical port spec.
func TargetPorts(ctx context.Context, q *db.Queries, targetID uuid.UUID) (string, error) {
	rows, err := q.ListTargetPorts(ctx, targetID)
	if err != nil {
		return "", fmt.Errorf("read target ports: %w", err)
	}
	var spec scanspec.PortSpec
	for _, r := range rows {
		pr := scanspec.PortRange{Start: uint16(r.PortStart), End: uint16(r.PortEnd)}
		if r.Protocol == "udp" {
			spec.UDP = append(spec.UDP, pr)
		} else {
			spec.TCP = append(spec.TCP, pr)
		}
	}
	return spec.String(), nil
}

func exclusions(ctx context.Context, q *db.Queries, t db.ScanTarget) ([]netip.Prefix, error) {
	ex, err := q.EffectiveExclusions(ctx, db.EffectiveExclusionsParams{
		TargetID: uuidNull(t.ID), SiteID: uuidNull(t.SiteID), Network: t.Network,
	})
	if err != nil {
		return nil, fmt.Errorf("read exclusions: %w", err)
	}
	ignored, err := q.IgnoredHostsIn(ctx, db.IgnoredHostsInParams{SiteID: t.SiteID, Network: t.Network})
	if err != nil {
		return nil, fmt.Errorf("read ignored hosts: %w", err)
	}
	for _, a := range ignored {
		ex = append(ex, netip.PrefixFrom(a, a.BitLen()))
	}
	return ex, nil
}

// Shard splits a network into prefixes of at most ShardBitsV4/V6 size.
func Shard(n netip.Prefix) ([]netip.Prefix, error) {
	n = n.Masked()
	bits := ShardBitsV4
	if n.Addr().Is6() {
		bits = ShardBitsV6
	}
	if n.Bits() >= bits {
		return []netip.Prefix{n}, nil
	}
	if bits-n.Bits() > 12 {
		return nil, fmt.Errorf("network %s is too large: at most %d jobs of /%d per run", n, MaxShards, bits)
	}
	count := 1 << (bits - n.Bits())
	out := make([]netip.Prefix, 0, count)
	addr := n.Addr()
	for range count {
		p := netip.PrefixFrom(addr, bits)
		out = append(out, p)
		addr = lastAddr(p).Next()
	}
	return out, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func overlapping(ex []netip.Prefix, shard netip.Prefix) []netip.Prefix {
	out := []netip.Prefix{}
	for _, e := range ex {
		if e.Overlaps(shard) {
			out = append(out, e)
		}
	}
	return out
}

func covered(ex []netip.Prefix, shard netip.Prefix) bool {
	for _, e := range ex {
		if e.Bits() <= shard.Bits() && e.Contains(shard.Addr()) {
			return true
		}
	}
	return false
}

// hostsIn returns the part of sorted hosts inside p.
func hostsIn(sorted []netip.Addr, p netip.Prefix) []netip.Addr {
	lo, _ := slices.BinarySearchFunc(sorted, p.Addr(), netip.Addr.Compare)
	hi, found := slices.BinarySearchFunc(sorted, lastAddr(p), netip.Addr.Compare)
	if found {
		hi++
	}
	return sorted[lo:hi]
}

// hostJob turns the up hosts of one shard into a job: the smallest prefix
// covering those not excluded, minus every other address of that prefix.
// ok is false when no host is left.
func hostJob(shard netip.Prefix, up []netip.Addr, excl []netip.Prefix) (netip.Prefix, []netip.Prefix, bool) {
	keep := make([]netip.Addr, 0, len(up))
	for _, a := range up {
		if !slices.ContainsFunc(excl, func(e netip.Prefix) bool { return e.Contains(a) }) {
			keep = append(keep, a)
		}
	}
	if len(keep) == 0 {
		return netip.Prefix{}, nil, false
	}
	first, last := keep[0], keep[len(keep)-1]
	bits := max(commonBits(first, last), shard.Bits())
	network := netip.PrefixFrom(first, bits).Masked()
	ex := complementCover(network, keep)
	if ex == nil {
		ex = []netip.Prefix{} // cidr[] NOT NULL
	}
	return network, ex, true
}

// commonBits is the length of the common leading bits of a and b.
func commonBits(a, b netip.Addr) int {
	x, y := a.AsSlice(), b.AsSlice()
	for i := range x {
		if d := x[i] ^ y[i]; d != 0 {
			n := 0
			for d&0x80 == 0 {
				d <<= 1
				n++
			}
			return i*8 + n
		}
	}
	return len(x) * 8
}

// complementCover returns the fewest prefixes covering every address of p
// that is not in keep (sorted, all inside p).
func complementCover(p netip.Prefix, keep []netip.Addr) []netip.Prefix {
	if len(keep) == 0 {
		return []netip.Prefix{p}
	}
	if p.Bits() == p.Addr().BitLen() {
		return nil
	}
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	hi := netip.PrefixFrom(lastAddr(lo).Next(), p.Bits()+1)
	split, _ := slices.BinarySearchFunc(keep, hi.Addr(), netip.Addr.Compare)
	return append(complementCover(lo, keep[:split]), complementCover(hi, keep[split:])...)
}

func uuidNull(id uuid.UUID) uuid.NullUUID { return uuid.NullUUID{UUID: id, Valid: true} }

// Exclusions returns what a job of target t must not report on: the global,
// site and target exclusions overlapping its network and the site's hosts
// marked ignore_scanning. Imports check their rows against the same set.
func Exclusions(ctx context.Context, q *db.Queries, t db.ScanTarget) ([]netip.Prefix, error) {
	return exclusions(ctx, q, t)
}

// cidrArray is prefixes as a PostgreSQL cidr[] literal. A prefix's text
// (digits, dots, colons, a slash) needs no quoting inside it.
func cidrArray(ps []netip.Prefix) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.String())
	}
	b.WriteByte('}')
	return b.String()
}
