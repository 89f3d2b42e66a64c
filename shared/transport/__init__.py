"""Transport: the broker, the delivery policy every stage runs (`Stage`), the raw-stream producer and the DLQ."""
