package consensus

// QueueLen returns how many commands wait for the next group-commit entry.
func QueueLen(p *Proposer) int {
	p.group.mu.Lock()
	defer p.group.mu.Unlock()
	n := 0
	for _, q := range p.group.queue {
		if !q.cancelled {
			n++
		}
	}
	return n
}

// ReadQueueLen returns how many read barriers wait for the next read-index
// request to the leader.
func ReadQueueLen(p *Proposer) int {
	p.reads.mu.Lock()
	defer p.reads.mu.Unlock()
	return len(p.reads.queue)
}

// Draining reports whether a goroutine is proposing p's queue.
func Draining(p *Proposer) bool {
	p.group.mu.Lock()
	defer p.group.mu.Unlock()
	return p.group.running
}

// Deliver is deliver, for the tests.
var Deliver = deliver
