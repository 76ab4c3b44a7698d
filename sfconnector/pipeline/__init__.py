"""From streaming events to durable decisions: candidates, batched lookups, pure decisions, outbox entries."""
