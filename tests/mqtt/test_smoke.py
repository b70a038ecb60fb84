from mqtt.brokers import Broker
from mqtt.harness import bridged


async def test_state_and_a_command_round_trip(broker: Broker) -> None:
    async with bridged(broker) as b:
        state = await b.user.wait_for(b.topics.state)
        assert state["mode"] == "idle"
        response = await b.user.request("set", {"speed_kmh": 1.0, "walk": "backward"})
        assert response["ok"], response
