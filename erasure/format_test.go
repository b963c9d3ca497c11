package erasure

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.txt from the current encoder")

// TestFormatReference encodes chunks with an independent, deliberately
// naive implementation of the format described in doc.go and checks that
// Encode produces the same shards byte for byte. If the codec library ever
// changes its matrix or field, or the layout code drifts from the
// documentation, this fails.
func TestFormatReference(t *testing.T) {
	for _, p := range testPolicies() {
		for _, size := range []int64{1, 5, int64(p.K)*BlockSize + 3, 2*int64(p.K)*BlockSize + 1001} {
			t.Run(fmt.Sprintf("%v/%d", p, size), func(t *testing.T) {
				data := testData(size, 99)
				shards, _ := mustEncode(t, p, data)
				want := referenceEncode(p, data)
				for i := range want {
					if !bytes.Equal(shards[i], want[i]) {
						t.Fatalf("shard %d differs from the reference encoding", i)
					}
				}
			})
		}
	}
}

// referenceEncode implements doc.go's format directly: GF(2^8) with
// polynomial 0x11D, coding matrix V·T⁻¹ where V[r][c] = r^c (0^0 = 1) and T
// its top K rows, stripes of K blocks.
func referenceEncode(p Policy, data []byte) [][]byte {
	var exp [510]byte
	var log [256]int
	x := 1
	for i := range 255 {
		exp[i], exp[i+255] = byte(x), byte(x)
		log[x] = i
		x <<= 1
		if x&0x100 != 0 {
			x ^= 0x11D
		}
	}
	mul := func(a, b byte) byte {
		if a == 0 || b == 0 {
			return 0
		}
		return exp[log[a]+log[b]]
	}
	inv := func(a byte) byte { return exp[255-log[a]] }
	pow := func(a byte, n int) byte {
		r := byte(1)
		for range n {
			r = mul(r, a)
		}
		return r
	}
	k, n := p.K, p.Shards()
	v := make([][]byte, n)
	for r := range v {
		v[r] = make([]byte, k)
		for c := range v[r] {
			v[r][c] = pow(byte(r), c)
		}
	}
	// Invert the top K×K square by Gauss–Jordan elimination.
	a := make([][]byte, k)
	ti := make([][]byte, k)
	for r := range k {
		a[r] = append([]byte(nil), v[r]...)
		ti[r] = make([]byte, k)
		ti[r][r] = 1
	}
	for c := range k {
		piv := c
		for a[piv][c] == 0 {
			piv++
		}
		a[c], a[piv] = a[piv], a[c]
		ti[c], ti[piv] = ti[piv], ti[c]
		f := inv(a[c][c])
		for j := range k {
			a[c][j], ti[c][j] = mul(a[c][j], f), mul(ti[c][j], f)
		}
		for r := range k {
			if r != c && a[r][c] != 0 {
				f := a[r][c]
				for j := range k {
					a[r][j] ^= mul(f, a[c][j])
					ti[r][j] ^= mul(f, ti[c][j])
				}
			}
		}
	}
	m := make([][]byte, n) // m = v · ti
	for r := range n {
		m[r] = make([]byte, k)
		for c := range k {
			for j := range k {
				m[r][c] ^= mul(v[r][j], ti[j][c])
			}
		}
	}

	// Layout: stripes of K·B bytes; the last one, of r bytes, uses blocks
	// of ceil(r/K); data zero-padded.
	var shards [][]byte = make([][]byte, n)
	for off := 0; off < len(data); off += k * BlockSize {
		stripe := data[off:min(off+k*BlockSize, len(data))]
		bs := (len(stripe) + k - 1) / k
		blocks := make([][]byte, k)
		for j := range k {
			blocks[j] = make([]byte, bs)
			if j*bs < len(stripe) {
				copy(blocks[j], stripe[j*bs:])
			}
		}
		for i := range n {
			out := make([]byte, bs)
			for x := range bs {
				for j := range k {
					out[x] ^= mul(m[i][j], blocks[j][x])
				}
			}
			shards[i] = append(shards[i], out...)
		}
	}
	return shards
}

// TestGolden pins the encoding: the checksums of every shard of a few
// fixed chunks under every policy up to six shards. A difference means the
// stored format changed, which must not happen (see doc.go). Run with
// -update only when adding cases.
func TestGolden(t *testing.T) {
	var got strings.Builder
	fmt.Fprintln(&got, "# policy size shard size sum stripe-sums (testData(size, 42))")
	for _, p := range testPolicies() {
		for _, size := range []int64{0, 3, 2*int64(p.K)*BlockSize + 7} {
			_, infos := mustEncode(t, p, testData(size, 42))
			for _, in := range infos {
				fmt.Fprintf(&got, "%v %d %d %d %016x", p, size, in.Index, in.Size, in.Sum)
				for _, s := range in.StripeSums {
					fmt.Fprintf(&got, " %016x", s)
				}
				fmt.Fprintln(&got)
			}
		}
	}
	path := filepath.Join("testdata", "golden.txt")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	gs := bufio.NewScanner(strings.NewReader(got.String()))
	ws := bufio.NewScanner(bytes.NewReader(want))
	for line := 1; ; line++ {
		g, w := gs.Scan(), ws.Scan()
		if !g && !w {
			return
		}
		if gs.Text() != ws.Text() {
			t.Fatalf("%s:%d: got\n\t%s\nwant\n\t%s", path, line, gs.Text(), ws.Text())
		}
	}
}
