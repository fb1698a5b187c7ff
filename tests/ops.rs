//! Running pandav as a service (issue 13), through the real binary: Prometheus metrics,
//! JSON logs, the container files, graceful shutdown and reload, and replicas sharing
//! their state in Redis (copy tasks included).

#[path = "common/mod.rs"]
mod common;
#[path = "ops/container.rs"]
mod container;
#[path = "ops/logs.rs"]
mod logs;
#[path = "ops/metrics.rs"]
mod metrics;
#[path = "ops/redis_fixture.rs"]
mod redis_fixture;
#[path = "ops/reload.rs"]
mod reload;
#[path = "ops/replicas.rs"]
mod replicas;
#[path = "ops/rotation.rs"]
mod rotation;
#[path = "ops/shutdown.rs"]
mod shutdown;
#[path = "ops/tasks.rs"]
mod tasks;
#[path = "ops/util.rs"]
mod util;
