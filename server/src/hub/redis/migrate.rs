//! Keys written before they carried hash tags, renamed at start.

use redis::AsyncCommands;

use super::keys;
use super::topology::Redis;

/// Renames room keys written before they carried hash tags ([`keys::untagged`]), so
/// ids, history and presence carry over an upgrade; returns how many it renamed.
/// With several servers starting at once, each renames what the others have not.
pub(super) async fn rename_untagged_keys(redis: &mut Redis) -> redis::RedisResult<usize> {
    let pattern = format!("{}room:*", keys::PREFIX);
    let mut cursor: u64 = 0;
    let mut renamed = 0;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await?;
        for key in found {
            let Some(tagged) = keys::untagged(&key) else {
                continue;
            };
            let moved: redis::RedisResult<bool> = redis::cmd("RENAMENX")
                .arg(&key)
                .arg(&tagged)
                .query_async(redis)
                .await;
            match moved {
                Ok(true) => renamed += 1,
                // Written under its new name since: the old one is stale.
                Ok(false) => redis.del(&key).await?,
                // Another server renamed it first.
                Err(err)
                    if err.kind()
                        == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {}
                Err(err) => return Err(err),
            }
        }
        if next == 0 {
            return Ok(renamed);
        }
        cursor = next;
    }
}
