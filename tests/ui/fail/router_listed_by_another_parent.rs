// A router listed in `routers` must name that router as its `parent`.
use policy_macros::execution_router;

#[execution_router(prefix = "/execution", routers = [variables::routes])]
mod api {}

#[execution_router(prefix = "/other", routers = [variables::routes])]
mod other {}

mod variables {
    use policy_macros::execution_router;

    #[execution_router(parent = super::api, prefix = "/variables")]
    pub mod routes {}
}

fn main() {}
