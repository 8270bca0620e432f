"""Run the gateway simulator: ``python -m simulator --host 127.0.0.1 --port 8765``."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from simulator import FaultConfigError, FaultPlan, start


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted (Ctrl+C or SIGTERM)."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="A local stand-in for the Wan image-to-video gateway.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free)")
    parser.add_argument("--key", help="accept only this API key (default: any non-empty key)")
    parser.add_argument("--speed", type=float, default=1.0, help="divide every wait by this")
    parser.add_argument("--fps", type=int, default=30, help="frames per second of the videos")
    parser.add_argument("--state-dir", help="keep tasks and videos here across restarts")
    parser.add_argument(
        "--link-ttl", type=float, default=86400.0, help="seconds a video link stays valid"
    )
    parser.add_argument("--faults", help="a TOML file of [[fault]] rules")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        plan = FaultPlan.from_toml(options.faults) if options.faults else None
    except (OSError, FaultConfigError, ValueError) as problem:
        parser.error(f"--faults: {problem}")
    try:
        simulator = start(
            host=options.host,
            port=options.port,
            key=options.key,
            speed=options.speed,
            fps=options.fps,
            state_dir=options.state_dir,
            link_ttl_seconds=options.link_ttl,
            faults=plan,
        )
    except (OSError, ValueError) as problem:
        parser.error(str(problem))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logging.getLogger("simulator").info("serving the Wan gateway simulator at %s", simulator.url)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
