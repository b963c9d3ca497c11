//go:build tools

// Package osprey tools pin: keeps dependencies in go.mod while packages land. Removed once all are imported.
package osprey

import (
	_ "github.com/aliyun/aliyun-oss-go-sdk/oss"
	_ "github.com/anishathalye/porcupine"
	_ "github.com/cespare/xxhash/v2"
	_ "github.com/cockroachdb/pebble/v2"
	_ "github.com/hashicorp/go-hclog"
	_ "github.com/hashicorp/raft"
	_ "github.com/hashicorp/raft-boltdb/v2"
	_ "github.com/julienschmidt/httprouter"
	_ "github.com/klauspost/reedsolomon"
	_ "github.com/minio/minio-go/v7"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/tencentyun/cos-go-sdk-v5"
	_ "gopkg.in/yaml.v3"
)
