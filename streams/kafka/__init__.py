"""Kafka plumbing: the embedded broker, topic administration, exact end offsets."""
