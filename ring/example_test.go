package ring_test

import (
	"fmt"

	"github.com/osprey-storage/osprey/ring"
)

func Example() {
	r, err := ring.New(ring.DefaultConfig(), []string{"node-c", "node-a", "node-b", "node-d", "node-e"})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Chunk 1 of file 1 is stored on three distinct nodes, primary first.
	// Every node with the same membership computes the same answer.
	fmt.Println(r.Owners(ring.ChunkKey(1, 1), 3))
	fmt.Println(r.Members())
	// Output:
	// [node-a node-b node-d]
	// [node-a node-b node-c node-d node-e]
}
