//! The guest contract for components: the WIT interface
//! `wasmproc:guest/host` (`guest/wit/wasmproc.wit`) on the component
//! linker, each function the core module `wasmproc_v1`'s import of the same
//! name, over lists and strings instead of guest memory. The work is done
//! by the same functions the core imports call (`sdk`, `share_imports`).

use wasmproc_abi::WIT_HOST_INTERFACE;
use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

use super::HostState;
use super::overrides::exit;
use super::sdk::{report_failure, set_output};
use super::share_imports::{
    self as share, ChannelOp, channel_op, grant_name, region_span, word_op,
};

type Ctx<'a> = StoreContextMut<'a, HostState>;

/// A name as the core imports read it (`grant_name`).
fn name_of(name: String) -> String {
    grant_name(name.as_bytes())
}

/// Defines `wasmproc:guest/host@1.0.0` in `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let mut host = linker.instance(WIT_HOST_INTERFACE)?;
    host.func_wrap("input", |store: Ctx<'_>, (): ()| {
        Ok((store.data().sdk.input.to_vec(),))
    })?;
    host.func_wrap("output", |mut store: Ctx<'_>, (bytes,): (Vec<u8>,)| {
        set_output(&mut store.data_mut().sdk, bytes)
    })?;
    host.func_wrap(
        "fail",
        |mut store: Ctx<'_>, (kind, message): (i32, String)| {
            report_failure(&mut store.data_mut().sdk, kind, message.as_bytes());
            Ok(())
        },
    )?;
    host.func_wrap(
        "exit",
        |_: Ctx<'_>, (code,): (u32,)| -> wasmtime::Result<()> { Err(exit(code)) },
    )?;
    host.func_wrap("queue-open", |mut store: Ctx<'_>, (name,): (String,)| {
        Ok((share::queue_open(
            &mut store.data_mut().share,
            name_of(name),
        ),))
    })?;
    host.func_wrap("pipe-open", |mut store: Ctx<'_>, (): ()| {
        Ok((share::pipe_open(&mut store.data_mut().share),))
    })?;
    host.func_wrap_async(
        "channel-send",
        |store: Ctx<'_>, (handle, message, timeout): (i32, Vec<u8>, i64)| {
            let op = channel_op(&store.data().share, handle);
            Box::new(async move {
                Ok((match op {
                    Some(op) => op.send(message, timeout).await,
                    None => wasmproc_abi::share::BAD_HANDLE,
                },))
            })
        },
    )?;
    host.func_wrap_async(
        "channel-recv",
        |store: Ctx<'_>, (handle, timeout): (i32, i64)| {
            let op = channel_op(&store.data().share, handle);
            Box::new(async move {
                Ok((match op {
                    Some(op) => op.recv(timeout).await,
                    None => Err(wasmproc_abi::share::BAD_HANDLE),
                },))
            })
        },
    )?;
    host.func_wrap("channel-close", |store: Ctx<'_>, (handle,): (i32,)| {
        let op = channel_op(&store.data().share, handle);
        Ok((op.map_or(wasmproc_abi::share::BAD_HANDLE, ChannelOp::close),))
    })?;
    host.func_wrap("region-open", |mut store: Ctx<'_>, (name,): (String,)| {
        Ok((share::region_open(
            &mut store.data_mut().share,
            name_of(name),
        ),))
    })?;
    host.func_wrap("region-size", |store: Ctx<'_>, (handle,): (i32,)| {
        Ok((share::region_size(&store.data().share, handle)?,))
    })?;
    host.func_wrap(
        "region-read",
        |store: Ctx<'_>, (handle, at, len): (i32, i64, u32)| {
            let span = region_span(&store.data().share, handle, at, len as usize)?;
            let mut bytes = vec![0; len as usize];
            span.read_into(&mut bytes);
            Ok((bytes,))
        },
    )?;
    host.func_wrap(
        "region-write",
        |store: Ctx<'_>, (handle, at, bytes): (i32, i64, Vec<u8>)| {
            region_span(&store.data().share, handle, at, bytes.len())?.write_from(&bytes);
            Ok(())
        },
    )?;
    host.func_wrap(
        "region-atomic32",
        |store: Ctx<'_>, (handle, op, at, a, b): (i32, i32, i64, i32, i32)| {
            Ok((share::region_atomic32(
                &store.data().share,
                handle,
                op,
                at,
                a,
                b,
            )?,))
        },
    )?;
    host.func_wrap(
        "region-atomic64",
        |store: Ctx<'_>, (handle, op, at, a, b): (i32, i32, i64, i64, i64)| {
            Ok((share::region_atomic64(
                &store.data().share,
                handle,
                op,
                at,
                a,
                b,
            )?,))
        },
    )?;
    for (name, lock) in [("region-wait", false), ("region-lock-wait", true)] {
        host.func_wrap_async(
            name,
            move |store: Ctx<'_>, (handle, at, expected, timeout): (i32, i64, i32, i64)| {
                let word = word_op(&store.data().share, handle, at);
                Box::new(async move { Ok((word?.wait(expected, timeout, lock).await,)) })
            },
        )?;
    }
    host.func_wrap_async(
        "region-notify",
        |store: Ctx<'_>, (handle, at, count): (i32, i64, i32)| {
            let word = word_op(&store.data().share, handle, at);
            Box::new(async move { Ok((word?.notify(count).await,)) })
        },
    )?;
    host.func_wrap("holder-id", |mut store: Ctx<'_>, (): ()| {
        Ok((share::holder_id(&mut store.data_mut().share),))
    })?;
    Ok(())
}
