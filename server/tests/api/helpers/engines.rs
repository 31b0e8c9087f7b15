//! The same test on both engines: `both_engines!(name)` runs `async fn name(Engine)`
//! in memory, on a `redis-server` of its own, and on a Redis Cluster of its own.
//! With Redis, `second()` starts another server on the same Redis, in this process.

use std::ops::Deref;
use std::sync::Arc;

use chorus_server::config::Config;

use super::redis_server::RedisUrl;
use super::{RedisCluster, RedisServer, TestApp, spawn_app_with};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Memory,
    Redis,
    /// The Redis engine on a three-master Redis Cluster.
    Cluster,
}

/// A server on one engine; derefs to its [`TestApp`].
pub(crate) struct EngineApp {
    app: TestApp,
    redis: Option<Arc<dyn RedisUrl + Send + Sync>>,
    configure: fn(&mut Config),
}

impl Deref for EngineApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// Starts a server on `engine` after `configure` adjusted the test defaults.
pub(crate) async fn spawn_on(engine: Engine, configure: fn(&mut Config)) -> EngineApp {
    let redis: Option<Arc<dyn RedisUrl + Send + Sync>> = match engine {
        Engine::Memory => None,
        Engine::Redis => Some(Arc::new(RedisServer::start().await)),
        Engine::Cluster => Some(Arc::new(RedisCluster::start().await)),
    };
    let app = start(redis.as_deref(), configure).await;
    EngineApp {
        app,
        redis,
        configure,
    }
}

async fn start(
    redis: Option<&(dyn RedisUrl + Send + Sync)>,
    configure: fn(&mut Config),
) -> TestApp {
    let url = redis.map(RedisUrl::url);
    spawn_app_with(move |config| {
        config.redis.redis_url = url;
        configure(config);
    })
    .await
}

impl EngineApp {
    /// With Redis, another server sharing this one's rooms; in memory, `None` (the
    /// test then uses this one, see [`EngineApp::or_this`]).
    pub(crate) async fn second(&self) -> Option<TestApp> {
        match &self.redis {
            Some(redis) => Some(start(Some(&**redis), self.configure).await),
            None => None,
        }
    }

    /// The server itself, for a test that takes its parts (its task, at shutdown),
    /// and what keeps its Redis running until dropped.
    pub(crate) fn split(self) -> (TestApp, Option<Arc<dyn RedisUrl + Send + Sync>>) {
        (self.app, self.redis)
    }

    /// The second server when there is one, else this one.
    pub(crate) fn or_this<'a>(&'a self, second: &'a Option<TestApp>) -> &'a TestApp {
        second.as_ref().unwrap_or(&self.app)
    }
}

/// `both_engines!(name)` (or `both_engines!(name, configure)`): a module `name` with
/// tests `memory`, `redis` and `cluster`, each calling `name(EngineApp)`.
#[macro_export]
macro_rules! both_engines {
    ($name:ident) => {
        $crate::both_engines!($name, |_| {});
    };
    ($name:ident, $configure:expr) => {
        mod $name {
            // The configuration may name what the test's file has in scope.
            #[allow(unused_imports)]
            use super::*;
            use $crate::helpers::{Engine, spawn_on};

            #[tokio::test]
            async fn memory() {
                super::$name(spawn_on(Engine::Memory, $configure).await).await;
            }

            #[tokio::test]
            async fn redis() {
                super::$name(spawn_on(Engine::Redis, $configure).await).await;
            }

            #[tokio::test]
            async fn cluster() {
                super::$name(spawn_on(Engine::Cluster, $configure).await).await;
            }
        }
    };
}
