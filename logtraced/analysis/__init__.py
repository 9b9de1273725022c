"""Engine-free log analysis: pattern mining and the insights drawn from comparing two periods."""
