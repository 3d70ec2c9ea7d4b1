package spool

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

const (
	fileSuffix  = ".spool"
	maxJobIDLen = 128
)

// fileName returns the spool file name for a job lease. Both parts must have
// been checked by validateID.
func fileName(jobID string, leaseToken int64) string {
	return jobID + "-" + strconv.FormatInt(leaseToken, 10) + fileSuffix
}

// validateID checks that a job id and lease token can name a spool file. Job
// ids are UUIDs in practice; any id of ASCII letters, digits, '-' and '_' is
// accepted, which keeps the name free of path separators and dots. Lease
// tokens granted by the controller are positive.
func validateID(jobID string, leaseToken int64) error {
	if jobID == "" || len(jobID) > maxJobIDLen {
		return fmt.Errorf("spool: job id must be 1 to %d characters, got %d", maxJobIDLen, len(jobID))
	}
	for i := 0; i < len(jobID); i++ {
		if c := jobID[i]; !isIDChar(c) {
			return fmt.Errorf("spool: job id %q: invalid character %q", jobID, c)
		}
	}
	if leaseToken <= 0 {
		return fmt.Errorf("spool: job %s: lease token must be positive, got %d", jobID, leaseToken)
	}
	return nil
}

func isIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// parseFileName is the inverse of fileName. It accepts only names fileName
// could have produced.
func parseFileName(name string) (jobID string, leaseToken int64, err error) {
	base, ok := strings.CutSuffix(name, fileSuffix)
	if !ok {
		return "", 0, errors.New("no " + fileSuffix + " suffix")
	}
	i := strings.LastIndexByte(base, '-')
	if i < 0 {
		return "", 0, errors.New("no lease token")
	}
	jobID, tok := base[:i], base[i+1:]
	leaseToken, err = strconv.ParseInt(tok, 10, 64)
	if err != nil || strconv.FormatInt(leaseToken, 10) != tok {
		return "", 0, fmt.Errorf("bad lease token %q", tok)
	}
	if err := validateID(jobID, leaseToken); err != nil {
		return "", 0, err
	}
	return jobID, leaseToken, nil
}
