//! What a route reads and answers, as its declaration says, for API documents.
//!
//! `#[execution_route]` records in [`RouteInfo::describe`](crate::RouteInfo::describe)
//! a function that fills an [`Operation`]: the request body and query parameters
//! of the handler's extractors (each extractor type that implements
//! [`RequestPart`]: `web::Json<T>`, `web::Query<T>`, or an application's own),
//! then what the attribute declares (`body = T`, `query = T`,
//! `responses = [201 => T, 404]`). Schemas come from the types themselves
//! through [`schemars`], so there is no table to keep beside the routes.
//!
//! Everything that names `schemars` needs the `openapi` feature; without it
//! the macros record no description (`describe` is `None`) and this crate does
//! not depend on `schemars`.

use std::collections::BTreeMap;

use serde_json::Value;

/// Fills an [`Operation`] with a route's request and responses; written by
/// `#[execution_route]`.
pub type Describe = fn(&mut Operation<'_>);

/// One operation of an API document being built: its JSON body, query
/// parameters and responses, as schemas (`$ref`s into the generator's
/// definitions for named types).
pub struct Operation<'g> {
    #[cfg(feature = "openapi")]
    requests: &'g mut schemars::SchemaGenerator,
    #[cfg(feature = "openapi")]
    responses_generator: &'g mut schemars::SchemaGenerator,
    #[cfg(not(feature = "openapi"))]
    never: (std::convert::Infallible, std::marker::PhantomData<&'g ()>),
    body: Option<Value>,
    query: Option<Value>,
    responses: BTreeMap<u16, Option<Value>>,
}

impl Operation<'_> {
    /// The schema of the JSON request body, if the route reads one.
    pub fn body(&self) -> Option<&Value> {
        self.body.as_ref()
    }

    /// The schema of the query parameters (an object whose properties are the
    /// parameters), if the route reads any.
    pub fn query(&self) -> Option<&Value> {
        self.query.as_ref()
    }

    /// The declared responses by status: the JSON body's schema, or `None` for
    /// a response without a body.
    pub fn responses(&self) -> &BTreeMap<u16, Option<Value>> {
        &self.responses
    }

    /// Sets the request body's schema.
    pub fn set_body_schema(&mut self, schema: Value) {
        self.body = Some(schema);
    }

    /// Sets the query parameters' schema.
    pub fn set_query_schema(&mut self, schema: Value) {
        self.query = Some(schema);
    }

    /// Declares a response: its status and, if it has a JSON body, the body's
    /// schema.
    pub fn set_response_schema(&mut self, status: u16, schema: Option<Value>) {
        self.responses.insert(status, schema);
    }
}

#[cfg(not(feature = "openapi"))]
impl Operation<'_> {
    /// Unreachable: without the `openapi` feature no `Operation` exists.
    #[doc(hidden)]
    pub fn never(&self) -> ! {
        match self.never.0 {}
    }
}

#[cfg(feature = "openapi")]
mod schemas {
    use actix_web::web;
    use schemars::{JsonSchema, SchemaGenerator};

    use super::Operation;

    impl<'g> Operation<'g> {
        /// An empty operation whose request schemas are made by `requests`
        /// and response schemas by `responses` (named types become `$ref`s
        /// into their definitions). serde may read and write one type
        /// differently (a defaulted field is optional to read, always
        /// written), so the two should be a deserialize and a serialize
        /// [`Contract`](schemars::generate::Contract).
        pub fn new(
            requests: &'g mut SchemaGenerator,
            responses: &'g mut SchemaGenerator,
        ) -> Operation<'g> {
            Operation {
                requests,
                responses_generator: responses,
                body: None,
                query: None,
                responses: Default::default(),
            }
        }

        /// The request body is JSON of type `T`.
        pub fn set_body<T: JsonSchema + ?Sized>(&mut self) {
            let schema = self.requests.subschema_for::<T>().to_value();
            self.set_body_schema(schema);
        }

        /// The query parameters are the fields of `T`.
        pub fn set_query<T: JsonSchema + ?Sized>(&mut self) {
            // Inline, not a `$ref`: a document lists query parameters one by one.
            let schema = T::json_schema(self.requests).to_value();
            self.set_query_schema(schema);
        }

        /// A response with status `status` and a JSON body of type `T`.
        pub fn set_response<T: JsonSchema + ?Sized>(&mut self, status: u16) {
            let schema = self.responses_generator.subschema_for::<T>().to_value();
            self.set_response_schema(status, Some(schema));
        }
    }

    /// A handler argument (an extractor) that reads part of the request: it
    /// puts that part's schema in the [`Operation`]. Extractors that do not
    /// implement it (`HttpRequest`, `web::Data`, `web::Path`...) add nothing.
    pub trait RequestPart {
        /// Records what this extractor reads.
        fn describe(operation: &mut Operation<'_>);
    }

    impl<T: JsonSchema> RequestPart for web::Json<T> {
        fn describe(operation: &mut Operation<'_>) {
            operation.set_body::<T>();
        }
    }

    impl<T: JsonSchema> RequestPart for web::Query<T> {
        fn describe(operation: &mut Operation<'_>) {
            operation.set_query::<T>();
        }
    }
}

#[cfg(feature = "openapi")]
pub use schemas::RequestPart;

/// Support for generated code: each handler argument is described through
/// [`RequestPart`] when its type implements it, and is skipped otherwise
/// (autoref specialization: the method found first is the one on
/// `Arg<T>`, whose impl exists only for `T: RequestPart`).
#[cfg(feature = "openapi")]
#[doc(hidden)]
pub mod arg {
    use std::marker::PhantomData;

    use super::{Operation, RequestPart};

    /// A handler argument's type.
    pub struct Arg<T: ?Sized>(PhantomData<T>);

    impl<T: ?Sized> Arg<T> {
        /// The marker.
        pub const fn new() -> Self {
            Arg(PhantomData)
        }
    }

    impl<T: ?Sized> Default for Arg<T> {
        fn default() -> Self {
            Arg::new()
        }
    }

    /// Chosen when the argument reads part of the request.
    pub trait DescribeArg {
        /// Records what the argument reads.
        fn describe_arg(&self, operation: &mut Operation<'_>);
    }

    impl<T: RequestPart> DescribeArg for Arg<T> {
        fn describe_arg(&self, operation: &mut Operation<'_>) {
            T::describe(operation);
        }
    }

    /// Chosen otherwise.
    pub trait SkipArg {
        /// Records nothing.
        fn describe_arg(&self, operation: &mut Operation<'_>);
    }

    impl<T: ?Sized> SkipArg for &Arg<T> {
        fn describe_arg(&self, _: &mut Operation<'_>) {}
    }
}
