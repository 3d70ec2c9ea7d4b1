package ingest

import (
	"net"
	"net/netip"

	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/gen/db"
)

// memoryRows is how many validated rows (hosts plus ports) a stream keeps in
// memory before it starts COPYing them into the staging tables. Below it a
// whole job travels to ingest_commit as arrays in the commit statement
// itself: one round trip instead of two COPYs of a few rows each, which cost
// more than the merge. Above it, memory stays bounded by one buffer.
const memoryRows = 2048

// Column names of the staging tables, in the order of the buffer's columns.
var (
	hostColumns = []string{"ip", "status", "reason", "mac_address", "vendor", "hostname", "os_name", "os_family", "os_confidence"}
	portColumns = []string{"ip", "protocol", "port", "state", "reason", "service_name", "service_product",
		"service_version", "service_extra_info", "scripts"}
)

// rowBuffer holds validated rows column by column: the shape both COPY and
// ingest_commit's array parameters take.
type rowBuffer struct {
	hIP                                 []netip.Addr
	hStatus, hReason                    []string
	hMac                                []net.HardwareAddr
	hVendor, hHostname, hOSName, hOSFam []string
	hOSConf                             []int16
	pIP                                 []netip.Addr
	pProtocol                           []string
	pPort                               []int32
	pState, pReason                     []string
	pName, pProduct, pVersion, pExtra   []string
	pScripts                            [][]byte
}

func (b *rowBuffer) addHost(h hostRow) {
	b.hIP = append(b.hIP, h.ip)
	b.hStatus = append(b.hStatus, h.status)
	b.hReason = append(b.hReason, h.reason)
	b.hMac = append(b.hMac, h.mac) // nil encodes as NULL
	b.hVendor = append(b.hVendor, h.vendor)
	b.hHostname = append(b.hHostname, h.hostname)
	b.hOSName = append(b.hOSName, h.osName)
	b.hOSFam = append(b.hOSFam, h.osFamily)
	b.hOSConf = append(b.hOSConf, h.osAccuracy)
}

func (b *rowBuffer) addPort(p portRow) {
	b.pIP = append(b.pIP, p.ip)
	b.pProtocol = append(b.pProtocol, p.protocol)
	b.pPort = append(b.pPort, p.port)
	b.pState = append(b.pState, p.state)
	b.pReason = append(b.pReason, p.reason)
	b.pName = append(b.pName, p.name)
	b.pProduct = append(b.pProduct, p.product)
	b.pVersion = append(b.pVersion, p.version)
	b.pExtra = append(b.pExtra, p.extra)
	b.pScripts = append(b.pScripts, p.scripts) // nil encodes as NULL
}

func (b *rowBuffer) len() int { return len(b.hIP) + len(b.pIP) }

// reset empties the buffer, keeping its capacity for the next rows.
func (b *rowBuffer) reset() {
	*b = rowBuffer{
		hIP: b.hIP[:0], hStatus: b.hStatus[:0], hReason: b.hReason[:0], hMac: b.hMac[:0],
		hVendor: b.hVendor[:0], hHostname: b.hHostname[:0], hOSName: b.hOSName[:0], hOSFam: b.hOSFam[:0],
		hOSConf: b.hOSConf[:0],
		pIP:     b.pIP[:0], pProtocol: b.pProtocol[:0], pPort: b.pPort[:0], pState: b.pState[:0],
		pReason: b.pReason[:0], pName: b.pName[:0], pProduct: b.pProduct[:0], pVersion: b.pVersion[:0],
		pExtra: b.pExtra[:0], pScripts: b.pScripts[:0],
	}
}

// hostSource and portSource feed the buffer to CopyFrom without building
// per-row []any slices for the whole buffer.
func (b *rowBuffer) hostSource() pgx.CopyFromSource {
	row := make([]any, len(hostColumns))
	return pgx.CopyFromSlice(len(b.hIP), func(i int) ([]any, error) {
		var mac any
		if b.hMac[i] != nil {
			mac = b.hMac[i]
		}
		row[0], row[1], row[2], row[3], row[4] = b.hIP[i], b.hStatus[i], b.hReason[i], mac, b.hVendor[i]
		row[5], row[6], row[7], row[8] = b.hHostname[i], b.hOSName[i], b.hOSFam[i], b.hOSConf[i]
		return row, nil
	})
}

func (b *rowBuffer) portSource() pgx.CopyFromSource {
	row := make([]any, len(portColumns))
	return pgx.CopyFromSlice(len(b.pIP), func(i int) ([]any, error) {
		var scripts any
		if b.pScripts[i] != nil {
			scripts = b.pScripts[i]
		}
		row[0], row[1], row[2], row[3], row[4] = b.pIP[i], b.pProtocol[i], b.pPort[i], b.pState[i], b.pReason[i]
		row[5], row[6], row[7], row[8], row[9] = b.pName[i], b.pProduct[i], b.pVersion[i], b.pExtra[i], scripts
		return row, nil
	})
}

// append adds o's rows after b's.
func (b *rowBuffer) append(o *rowBuffer) {
	b.hIP = append(b.hIP, o.hIP...)
	b.hStatus = append(b.hStatus, o.hStatus...)
	b.hReason = append(b.hReason, o.hReason...)
	b.hMac = append(b.hMac, o.hMac...)
	b.hVendor = append(b.hVendor, o.hVendor...)
	b.hHostname = append(b.hHostname, o.hHostname...)
	b.hOSName = append(b.hOSName, o.hOSName...)
	b.hOSFam = append(b.hOSFam, o.hOSFam...)
	b.hOSConf = append(b.hOSConf, o.hOSConf...)
	b.pIP = append(b.pIP, o.pIP...)
	b.pProtocol = append(b.pProtocol, o.pProtocol...)
	b.pPort = append(b.pPort, o.pPort...)
	b.pState = append(b.pState, o.pState...)
	b.pReason = append(b.pReason, o.pReason...)
	b.pName = append(b.pName, o.pName...)
	b.pProduct = append(b.pProduct, o.pProduct...)
	b.pVersion = append(b.pVersion, o.pVersion...)
	b.pExtra = append(b.pExtra, o.pExtra...)
	b.pScripts = append(b.pScripts, o.pScripts...)
}

// setManyArrays hands the rows of a batch to ingest_commit_many. Empty
// columns go as empty arrays, not NULL.
func (b *rowBuffer) setManyArrays(p *db.CommitJobsParams) {
	p.HIp, p.HStatus, p.HReason, p.HMac = nonNil(b.hIP), nonNil(b.hStatus), nonNil(b.hReason), nonNil(b.hMac)
	p.HVendor, p.HHostname, p.HOsName = nonNil(b.hVendor), nonNil(b.hHostname), nonNil(b.hOSName)
	p.HOsFamily, p.HOsConf = nonNil(b.hOSFam), nonNil(b.hOSConf)
	p.PIp, p.PProtocol, p.PPort, p.PState = nonNil(b.pIP), nonNil(b.pProtocol), nonNil(b.pPort), nonNil(b.pState)
	p.PReason, p.PName, p.PProduct = nonNil(b.pReason), nonNil(b.pName), nonNil(b.pProduct)
	p.PVersion, p.PExtra, p.PScripts = nonNil(b.pVersion), nonNil(b.pExtra), nonNil(b.pScripts)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
