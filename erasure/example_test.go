package erasure_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/osprey-storage/osprey/erasure"
)

func ExampleParsePolicy() {
	for _, s := range []string{"ec:4+2", "replicas:3", "ec:4"} {
		p, err := erasure.ParsePolicy(s)
		switch {
		case errors.Is(err, erasure.ErrNotEC):
			fmt.Printf("%s: replication\n", s)
		case err != nil:
			fmt.Printf("%s: %v\n", s, err)
		default:
			fmt.Printf("%s: %d data + %d parity shards; on 3 nodes: %v\n", p, p.K, p.M, p.Validate(3))
		}
	}
	// Output:
	// ec:4+2: 4 data + 2 parity shards; on 3 nodes: erasure: policy ec:4+2 needs 6 nodes (one per shard), the cluster has 3: erasure: invalid policy
	// replicas:3: replication
	// ec:4: erasure: policy "ec:4": want ec:K+M: erasure: invalid policy
}

func ExampleNewReader() {
	p := erasure.Policy{K: 2, M: 1}
	chunk := []byte(strings.Repeat("osprey ", 100_000)) // 700 kB
	shards, infos, err := erasure.Encode(p, chunk)
	if err != nil {
		panic(err)
	}
	// In a node the source reads from the shard's chunkstore; here shard 0
	// is lost.
	src := func(ctx context.Context, i int, off, n int64) (io.ReadCloser, error) {
		if i == 0 {
			return nil, errors.New("node down")
		}
		return io.NopCloser(bytes.NewReader(shards[i][off : off+n])), nil
	}
	opts := erasure.ReaderOptions{
		OnUnavailable: func(i int, err error) { fmt.Println("unavailable:", err) },
	}
	r, err := erasure.NewReader(context.Background(), p, int64(len(chunk)), infos, src, 299_999, 14, opts)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	fmt.Printf("%q %v\n", got, err)
	// Output:
	// unavailable: erasure: shard 0: open [131072, +65536): node down
	// "osprey osprey " <nil>
}
