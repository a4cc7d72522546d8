"""Kafka topics, the CloudEvents envelope codec and the consumer runtime."""
