//! The desk's feed client: an actor that owns the WebSocket connection to the gateway, resumes, reconnects and publishes its state
