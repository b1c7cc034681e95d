//! The shapes of handler methods, so that [`Routes`](super::Routes) takes
//! `async fn`s that borrow the handler (`&self`), the way tonic services read.
//!
//! An `async fn m(&self, ctx: Context, req: Req) -> Result<Rsp, RpcError>` returns
//! a future that borrows `self`; its type depends on the borrow's lifetime, so it
//! cannot be named in a plain `Fn(&S, ..) -> Fut` bound. [`Method2`] and
//! [`Method3`] name it per lifetime, and `for<'a> Method2<'a, ..>` accepts every
//! such function. Both are implemented for every matching function: users never
//! implement them, only write methods.

use std::future::Future;

/// A function of the handler and two arguments returning a sendable future that
/// may borrow the handler (unary and client-stream methods).
pub trait Method2<'a, S: 'a, A, B, O>: Fn(&'a S, A, B) -> Self::Fut {
    /// The future the method returns.
    type Fut: Future<Output = O> + Send + 'a;
}

impl<'a, S: 'a, A, B, O, F, Fut> Method2<'a, S, A, B, O> for F
where
    F: Fn(&'a S, A, B) -> Fut,
    Fut: Future<Output = O> + Send + 'a,
{
    type Fut = Fut;
}

/// A function of the handler and three arguments returning a sendable future that
/// may borrow the handler (server-stream and bidirectional methods).
pub trait Method3<'a, S: 'a, A, B, C, O>: Fn(&'a S, A, B, C) -> Self::Fut {
    /// The future the method returns.
    type Fut: Future<Output = O> + Send + 'a;
}

impl<'a, S: 'a, A, B, C, O, F, Fut> Method3<'a, S, A, B, C, O> for F
where
    F: Fn(&'a S, A, B, C) -> Fut,
    Fut: Future<Output = O> + Send + 'a,
{
    type Fut = Fut;
}
