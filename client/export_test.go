package client

// SetParallelPiece sets the piece size of parallel downloads for a test
// and returns the function that restores it.
func SetParallelPiece(n int64) (restore func()) {
	old := parallelPiece
	parallelPiece = n
	return func() { parallelPiece = old }
}
