package erasure

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReaderRange reads arbitrary ranges of arbitrary chunks under every
// small policy, with arbitrary shards missing and one shard possibly
// carrying a flipped byte in every block, and checks the bytes against the chunk. When too
// many shards are bad the read must fail with ErrTooFewShards exactly when
// some stripe in the range needs a bad data shard, and everything returned
// before the failure must be right.
func FuzzReaderRange(f *testing.F) {
	stripe := uint32(2 * BlockSize)
	f.Add(uint8(5), uint32(3*stripe+17), uint32(stripe-1), uint32(stripe+2), uint8(0), uint8(0), uint32(0))
	f.Add(uint8(5), uint32(3*stripe+17), uint32(0), uint32(3*stripe+17), uint8(1), uint8(0), uint32(0))
	f.Add(uint8(5), uint32(3*stripe+17), uint32(BlockSize), uint32(BlockSize), uint8(0), uint8(2), uint32(BlockSize+5))
	f.Add(uint8(13), uint32(1000), uint32(999), uint32(1), uint8(3), uint8(4), uint32(77))
	f.Add(uint8(0), uint32(0), uint32(0), uint32(0), uint8(0), uint8(0), uint32(0))
	f.Add(uint8(9), uint32(4*stripe), uint32(2*stripe-3), uint32(7), uint8(0b110), uint8(1), uint32(3))
	policies := testPolicies()
	f.Fuzz(func(t *testing.T, pi uint8, size, off, n uint32, missing, corrupt uint8, corruptAt uint32) {
		p := policies[int(pi)%len(policies)]
		sz := int64(size) % (4*int64(p.K)*BlockSize + 1)
		o := int64(off) % (sz + 1)
		l := int64(n) % (sz - o + 1)
		mask := uint(missing) & (1<<p.Shards() - 1)
		data := testData(sz, uint64(size))
		shards, infos := mustEncode(t, p, data)

		bad := mask
		if c := int(corrupt) % (p.Shards() + 1); c > 0 && infos[0].Size > 0 {
			// Flip a byte in every block, so the shard is bad in every stripe.
			for s := int64(0); s < infos[0].Size; s += BlockSize {
				block := shards[c-1][s:min(s+BlockSize, infos[0].Size)]
				block[int(corruptAt)%len(block)] ^= 0x80
			}
			bad |= 1 << (c - 1)
		}
		src := newMemSource(shards, mask)
		got, err := readRange(t, p, sz, infos, src.open, o, l, ReaderOptions{})
		if !bytes.Equal(got, data[o:o+int64(len(got))]) {
			t.Fatalf("%v size %d [%d, +%d) bad %s: wrong bytes", p, sz, o, l, maskString(bad))
		}
		if wantErr := mustFail(p, sz, o, l, bad); wantErr {
			if !errors.Is(err, ErrTooFewShards) {
				t.Fatalf("%v size %d [%d, +%d) bad %s: err %v, want ErrTooFewShards", p, sz, o, l, maskString(bad), err)
			}
			return
		}
		if err != nil || int64(len(got)) != l {
			t.Fatalf("%v size %d [%d, +%d) bad %s: %d bytes, %v", p, sz, o, l, maskString(bad), len(got), err)
		}
		checkRequested(t, p, sz, src, o, l)
	})
}

// mustFail reports whether reading [off, off+n) must fail with the shards
// in bad unusable: fewer than K good shards, and some stripe of the range
// needing a bad data shard on the fast path.
func mustFail(p Policy, size, off, n int64, bad uint) bool {
	good := p.Shards()
	for i := range p.Shards() {
		if bad&(1<<i) != 0 {
			good--
		}
	}
	if good >= p.K || n == 0 {
		return false
	}
	l := newLayout(p, size)
	for s := int(off / l.stripeLen()); s <= int((off+n-1)/l.stripeLen()); s++ {
		start := l.stripeStart(s)
		bs := int64(l.block(s))
		a := max(off, start) - start
		b := min(off+n, start+l.stripeData(s)) - start
		for j := a / bs; j <= (b-1)/bs; j++ {
			if bad&(1<<j) != 0 {
				return true
			}
		}
	}
	return false
}
