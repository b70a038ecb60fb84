"""The MQTT interface (docs/mqtt.md): topics, payloads, Home Assistant discovery, the bridge."""
