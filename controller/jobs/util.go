package jobs

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
)

func durationSeconds(s int32) *durationpb.Duration {
	return durationpb.New(time.Duration(s) * time.Second)
}
