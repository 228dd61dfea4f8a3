//! [`AsyncFlashMap`]: the map behind an `Arc<RwLock>`, with bulk calls on tokio's blocking pool.

use std::sync::{Arc, RwLock};

use crate::error::{FlashMapError, Result};
use crate::FlashMap;

/// A cloneable async handle to a [`FlashMap`]. Each call moves its batch to
/// `tokio::task::spawn_blocking`, so the executor never stalls; gets share a read lock,
/// writes take the write lock.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), flash_map::FlashMapError> {
/// use flash_map::{AsyncFlashMap, FlashMap};
/// let map = AsyncFlashMap::new(FlashMap::<u64, u64>::with_capacity(1_000)?);
/// let other = map.clone();
/// tokio::spawn(async move { other.bulk_insert(vec![(1, 2)]).await }).await.unwrap()?;
/// assert_eq!(map.bulk_get(vec![1]).await?, vec![Some(2)]);
/// # Ok(()) }
/// ```
pub struct AsyncFlashMap<K, V> {
    inner: Arc<RwLock<FlashMap<K, V>>>,
}

impl<K, V> Clone for AsyncFlashMap<K, V> {
    fn clone(&self) -> Self {
        AsyncFlashMap { inner: Arc::clone(&self.inner) }
    }
}

fn poisoned() -> FlashMapError {
    FlashMapError::Task("a previous call panicked while holding the map".into())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| FlashMapError::Task(e.to_string()))?
}

impl<K: bytemuck::Pod + Send + Sync, V: bytemuck::Pod + Send + Sync> AsyncFlashMap<K, V> {
    /// Wraps a map.
    pub fn new(map: FlashMap<K, V>) -> Self {
        AsyncFlashMap { inner: Arc::new(RwLock::new(map)) }
    }

    /// [`FlashMap::bulk_insert`] on the blocking pool.
    pub async fn bulk_insert(&self, pairs: Vec<(K, V)>) -> Result<usize> {
        let m = Arc::clone(&self.inner);
        blocking(move || m.write().map_err(|_| poisoned())?.bulk_insert(&pairs)).await
    }

    /// [`FlashMap::bulk_get`] on the blocking pool.
    pub async fn bulk_get(&self, keys: Vec<K>) -> Result<Vec<Option<V>>> {
        let m = Arc::clone(&self.inner);
        blocking(move || m.read().map_err(|_| poisoned())?.bulk_get(&keys)).await
    }

    /// [`FlashMap::bulk_remove`] on the blocking pool.
    pub async fn bulk_remove(&self, keys: Vec<K>) -> Result<usize> {
        let m = Arc::clone(&self.inner);
        blocking(move || m.write().map_err(|_| poisoned())?.bulk_remove(&keys)).await
    }

    /// [`FlashMap::bulk_contains`] on the blocking pool.
    pub async fn bulk_contains(&self, keys: Vec<K>) -> Result<Vec<bool>> {
        let m = Arc::clone(&self.inner);
        blocking(move || m.read().map_err(|_| poisoned())?.bulk_contains(&keys)).await
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.inner.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
