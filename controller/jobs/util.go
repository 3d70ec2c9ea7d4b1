package jobs

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
)

func upper(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }

func durationSeconds(s int32) *durationpb.Duration {
	return durationpb.New(time.Duration(s) * time.Second)
}
