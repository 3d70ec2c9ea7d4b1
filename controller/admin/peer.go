package admin

import (
	"context"

	"google.golang.org/grpc/peer"
)

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
