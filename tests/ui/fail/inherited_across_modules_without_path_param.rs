// A `ti:self` handed down by a parent in another module still needs
// `{task_instance_id}` in every route's path.
use policy_macros::execution_router;

#[execution_router(prefix = "/execution", scopes = ["ti:self"], routers = [variables::routes])]
mod api {}

mod variables {
    use policy_macros::execution_router;

    #[execution_router(parent = super::api, prefix = "/variables")]
    pub mod routes {
        use policy_macros::execution_route;

        #[execution_route(get, "/{variable_key}")]
        pub async fn get_variable() -> &'static str {
            ""
        }
    }
}

fn main() {}
