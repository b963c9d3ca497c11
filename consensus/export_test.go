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
