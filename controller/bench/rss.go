package bench

import (
	"sync"
	"sync/atomic"
	"time"
)

// sampleRSS samples pid's VmRSS every 20 ms until the returned function is
// called, which stops the sampling and returns the largest value in MB: a
// cross-check of VmHWM while a case runs.
func sampleRSS(pid int) (stop func() float64) {
	var maxKB atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if kb, err := procStatus(pid, "VmRSS"); err == nil && kb > maxKB.Load() {
				maxKB.Store(kb)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() float64 {
		close(done)
		wg.Wait()
		return float64(maxKB.Load()) / 1024
	}
}
