"""`make bench`: the gateway's benchmarks, each measured against a baseline in the same run."""
