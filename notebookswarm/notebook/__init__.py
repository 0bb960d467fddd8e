"""The controller side (a kernel or the CLI), never gevent: Swarm, run data, frames, dashboard."""
