"""The MQTT interface: topics and payloads of PRODUCT.md, Home Assistant discovery, the bridge."""
