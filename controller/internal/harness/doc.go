// Package harness owns the process and network-namespace primitives that
// controller/bench and controller/e2e share: a child process in its own
// process group (output captured to a file or memory, stop with a grace
// period, kill, wait for a line, tail, RSS/VmHWM from /proc), a free
// address to listen on, the ip(8) wrapper, namespace teardown that kills
// the namespace's processes by PID, reaping of namespaces left by a killed
// run, and the host forwarding sysctls a test must leave as found.
//
// It builds no topology and starts no scanorama binary: the namespace labs
// (bench netLab, e2e nsSite) and the controller/agent launchers stay with
// their callers as thin layers over these primitives.
package harness
