package chunkstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/osprey-storage/osprey/chunkstore"
)

func Example() {
	opts := chunkstore.DefaultOptions()
	opts.FS = vfs.NewMem() // an in-memory filesystem; omit for the real disk
	opts.Logger = slog.New(slog.DiscardHandler)
	s, err := chunkstore.Open("/data/chunks", opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	ctx := context.Background()

	// Store chunk 1 of file 42: exactly size bytes are streamed from the
	// reader and are durable when Put returns.
	k := chunkstore.Key{UID: 42, Chunk: 1}
	body := "hello, chunk"
	info, err := s.Put(ctx, k, strings.NewReader(body), int64(len(body)))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("stored", info.Size, "bytes")

	// Read bytes 7.. back; every block read is checksummed.
	rc, _, err := s.Get(ctx, k, 7, -1)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", b)

	// Once the file is tiered, its staged chunks go.
	if err := s.DeleteUID(ctx, 42); err != nil {
		fmt.Println(err)
		return
	}
	_, err = s.Stat(ctx, k)
	fmt.Println(err)
	// Output:
	// stored 12 bytes
	// chunk
	// chunkstore: stat 42/1/0: chunkstore: not found
}
