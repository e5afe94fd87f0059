package event

// Event Hubs counts its flow control in messages, and a message can hold anything from one
// record to 1 MB of them. A fixed message count per receive therefore bounds nothing: 100
// messages a partition is 200 KB on a quiet hub and 100 MB on a busy one. receiveSizer turns
// the byte budget of a partition (partition_receive_bytes) into the message count of the next
// receive from the sizes of the messages seen so far.

// maxMessageBytes is the largest message Event Hubs accepts (Basic, Standard and Premium tiers):
// until a partition has shown its sizes, every message is assumed to be that large.
const maxMessageBytes = 1 << 20

type receiveSizer struct {
	budget   int64   // bytes a partition may have received and not yet processed
	maxCount int     // partition_receive_count
	avg      float64 // moving average of message sizes, 0 before the first message
}

// next is the number of messages to ask for: as many as fit the budget at the average size,
// at least one, at most partition_receive_count.
func (s *receiveSizer) next() int {
	size := s.avg
	if size <= 0 {
		size = maxMessageBytes
	}
	n := int(float64(s.budget) / size)
	return min(max(n, 1), s.maxCount)
}

// observe folds the sizes of one received batch into the average. Each batch weighs a quarter,
// so a change in what the hub carries is followed within a few receives, while one odd batch
// moves the count only a little.
func (s *receiveSizer) observe(sizes ...int) {
	if len(sizes) == 0 {
		return
	}
	total := 0
	for _, n := range sizes {
		total += n
	}
	mean := float64(total) / float64(len(sizes))
	if s.avg <= 0 {
		s.avg = mean
		return
	}
	s.avg += (mean - s.avg) / 4
}
