"""The JetStream bridge worker: the durable kinds from the journals into NATS JetStream."""
