//! [`Counter`]: value types that `bulk_add` can sum.

use flash_map_core::CounterKind;

mod sealed {
    pub trait Sealed {}
}

/// A value type that [`crate::FlashMap::bulk_add`] adds with wrapping arithmetic:
/// `u32`, `u64`, `i32`, `i64`.
pub trait Counter: bytemuck::Pod + sealed::Sealed {
    #[doc(hidden)]
    const KIND: CounterKind;
}

macro_rules! counter {
    ($($t:ty => $k:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl Counter for $t {
            const KIND: CounterKind = CounterKind::$k;
        }
    )*};
}
counter!(u32 => U32, i32 => U32, u64 => U64, i64 => U64);
