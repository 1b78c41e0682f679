//! The route table: path patterns to handlers, with 404 and 405 (and its
//! `Allow` header) for everything else.

use hyper::body::Incoming;
use hyper::{Method, Request};

use crate::api::{Api, Handled};
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Root,
    Healthz,
    Readyz,
    Register,
    Login,
    Users,
    Me,
    User,
    Search,
}

impl Route {
    /// The methods the route answers, as the `Allow` header lists them.
    fn allow(self) -> &'static str {
        match self {
            Route::Register | Route::Login => "POST",
            Route::Users => "GET, POST",
            Route::User => "GET, PUT, DELETE",
            Route::Root | Route::Healthz | Route::Readyz | Route::Me | Route::Search => "GET",
        }
    }
}

pub struct Routes(matchit::Router<Route>);

impl Routes {
    pub fn new() -> Self {
        let table = [
            ("/", Route::Root),
            ("/healthz", Route::Healthz),
            ("/readyz", Route::Readyz),
            ("/api/v1/auth/register", Route::Register),
            ("/api/v1/auth/login", Route::Login),
            ("/api/v1/users", Route::Users),
            ("/api/v1/users/", Route::Users),
            ("/api/v1/users/me", Route::Me),
            ("/api/v1/users/{user_id}", Route::User),
            ("/api/v1/search", Route::Search),
            ("/search", Route::Search),
        ];
        let mut router = matchit::Router::new();
        for (path, route) in table {
            // The table is fixed and tested; a clash is a programming error caught by every test run.
            if let Err(error) = router.insert(path, route) {
                panic!("route table: {path}: {error}");
            }
        }
        Self(router)
    }

    pub async fn dispatch(&self, api: &Api, request: Request<Incoming>) -> Handled {
        let (route, user_id) = match self.0.at(request.uri().path()) {
            Ok(found) => (*found.value, found.params.get("user_id").map(str::to_owned)),
            Err(_) => return Err(ApiError::NotFound),
        };
        let id = user_id.as_deref().unwrap_or_default();
        match (route, request.method().clone()) {
            (Route::Root, Method::GET) => api.welcome().await,
            (Route::Healthz, Method::GET) => api.healthz().await,
            (Route::Readyz, Method::GET) => api.readyz().await,
            (Route::Register, Method::POST) => api.register(request).await,
            (Route::Login, Method::POST) => api.login(request).await,
            (Route::Users, Method::GET) => api.list_users(&request).await,
            (Route::Users, Method::POST) => api.create_user(request).await,
            (Route::Me, Method::GET) => api.me(&request).await,
            (Route::User, Method::GET) => api.get_user(&request, id).await,
            (Route::User, Method::PUT) => api.update_user(request, id).await,
            (Route::User, Method::DELETE) => api.delete_user(&request, id).await,
            (Route::Search, Method::GET) => api.search(&request).await,
            (route, _) => Err(ApiError::MethodNotAllowed(route.allow())),
        }
    }
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}
