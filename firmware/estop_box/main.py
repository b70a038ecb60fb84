# treadctl e-stop button box: MicroPython on a Raspberry Pi Pico (RP2040), USB serial.
# Line format and wiring: docs/estop.md and README.md beside this file.
#
# The button is NORMALLY CLOSED between GP15 and GND, read with the internal pull-up: a closed
# contact reads 0 (released); pressed, a broken wire or a loose plug reads 1 and counts as pressed.
# A press is sent at once (STOP line) and in every heartbeat after it; a release needs the
# contact closed for RELEASE_MS first. The hardware watchdog resets a hung board, and the
# silence that follows is an e-stop on the host side.
import sys
import time

from machine import WDT, Pin

PERIOD_MS = 100  # heartbeat period; the host allows 200 ms plus its timeout_s
RELEASE_MS = 50  # contact closed this long before "released" (debounce, press is instant)
SAMPLE_MS = 5

button = Pin(15, Pin.IN, Pin.PULL_UP)
led = Pin("LED", Pin.OUT)
wdt = WDT(timeout=500)  # ms; fed every loop


def crc8(data):
    # CRC-8/SMBUS: polynomial 0x07, initial 0, no reflection ("123456789" -> 0xF4)
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def send(body):
    raw = body.encode()
    sys.stdout.write("%s*%02X\n" % (body, crc8(raw)))


seq = 0
pressed = True  # until the contact has been seen closed for RELEASE_MS
closed_since = None
next_beat = time.ticks_ms()
while True:
    now = time.ticks_ms()
    if button.value():  # open: pressed or broken
        closed_since = None
        if not pressed:
            pressed = True
            send("STOP %d" % seq)
            seq = (seq + 1) & 0xFFFF
    else:
        if closed_since is None:
            closed_since = now
        if pressed and time.ticks_diff(now, closed_since) >= RELEASE_MS:
            pressed = False
    if time.ticks_diff(now, next_beat) >= 0:
        send("HB %d %s" % (seq, "P" if pressed else "R"))
        seq = (seq + 1) & 0xFFFF
        next_beat = time.ticks_add(now, PERIOD_MS)
        led.value(not pressed)
    wdt.feed()
    time.sleep_ms(SAMPLE_MS)
