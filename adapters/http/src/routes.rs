//! The route table: path patterns to handlers, with 404 and 405 (and its
//! `Allow` header) for everything else.

use hyper::body::Incoming;
use hyper::{Method, Request};
use parley_ports::domain::ClientAddress;

use crate::api::{Api, Handled, Readiness};
use crate::docs::Docs;
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
    Rooms,
    RoomMembers,
    RoomHistory,
    OpenApi,
    ChatPage,
    SwaggerPage,
    SwaggerFile,
    RedocPage,
    RedocScript,
}

impl Route {
    /// The methods the route answers, as the `Allow` header lists them.
    fn allow(self) -> &'static str {
        match self {
            Route::Register | Route::Login => "POST",
            Route::Users => "GET, POST",
            Route::User => "GET, PUT, DELETE",
            Route::Root
            | Route::Healthz
            | Route::Readyz
            | Route::Me
            | Route::Search
            | Route::Rooms
            | Route::RoomMembers
            | Route::RoomHistory
            | Route::OpenApi
            | Route::ChatPage
            | Route::SwaggerPage
            | Route::SwaggerFile
            | Route::RedocPage
            | Route::RedocScript => "GET",
        }
    }
}

const TABLE: [(&str, Route); 21] = [
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
    ("/api/v1/rooms", Route::Rooms),
    ("/api/v1/rooms/{room}/members", Route::RoomMembers),
    ("/api/v1/rooms/{room}/history", Route::RoomHistory),
    ("/openapi.json", Route::OpenApi),
    ("/chat", Route::ChatPage),
    ("/docs", Route::SwaggerPage),
    ("/docs/", Route::SwaggerPage),
    ("/docs/{file}", Route::SwaggerFile),
    ("/redoc", Route::RedocPage),
    ("/redoc/redoc.standalone.js", Route::RedocScript),
];

pub struct Routes {
    router: matchit::Router<Route>,
    docs: Docs,
    readiness: Readiness,
}

impl Routes {
    pub fn new() -> Self {
        let mut router = matchit::Router::new();
        for (path, route) in TABLE {
            // The table is fixed and tested; a clash is a programming error caught by every test run.
            if let Err(error) = router.insert(path, route) {
                panic!("route table: {path}: {error}");
            }
        }
        Self { router, docs: Docs::new(), readiness: Readiness::default() }
    }

    pub async fn dispatch(&self, api: &Api, request: Request<Incoming>, client: ClientAddress) -> Handled {
        if request.uri().path().starts_with("/ws/")
            && let Some(upgrade) = &api.websockets
        {
            return Ok(upgrade(request, client).await);
        }
        let (route, param) = match self.router.at(request.uri().path()) {
            Ok(found) => (*found.value, found.params.iter().next().map(|(_, value)| value.to_owned())),
            Err(_) => return Err(ApiError::NotFound),
        };
        let id = param.as_deref().unwrap_or_default();
        match (route, request.method().clone()) {
            (Route::Root, Method::GET) => api.welcome().await,
            (Route::Healthz, Method::GET) => api.healthz().await,
            (Route::Readyz, Method::GET) => api.readyz(&request, &self.readiness).await,
            (Route::Register, Method::POST) => api.register(request).await,
            (Route::Login, Method::POST) => api.login(request).await,
            (Route::Users, Method::GET) => api.list_users(&request).await,
            (Route::Users, Method::POST) => api.create_user(request).await,
            (Route::Me, Method::GET) => api.me(&request).await,
            (Route::User, Method::GET) => api.get_user(&request, id).await,
            (Route::User, Method::PUT) => api.update_user(request, id).await,
            (Route::User, Method::DELETE) => api.delete_user(&request, id).await,
            (Route::Search, Method::GET) => api.search(&request).await,
            (Route::Rooms, Method::GET) => api.rooms().await,
            (Route::RoomMembers, Method::GET) => api.room_members(id).await,
            (Route::RoomHistory, Method::GET) => api.room_history(&request, id).await,
            (Route::OpenApi, Method::GET) => Ok(self.docs.openapi()),
            (Route::ChatPage, Method::GET) => Ok(self.docs.chat_page()),
            (Route::SwaggerPage, Method::GET) => Ok(self.docs.swagger_page()),
            (Route::SwaggerFile, Method::GET) => self.docs.swagger_file(id),
            (Route::RedocPage, Method::GET) => Ok(self.docs.redoc_page()),
            (Route::RedocScript, Method::GET) => Ok(self.docs.redoc_script()),
            (route, _) => Err(ApiError::MethodNotAllowed(route.allow())),
        }
    }
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Routes serving the documentation itself, which the document does not list.
    const DOCUMENTATION: [Route; 6] =
        [Route::OpenApi, Route::ChatPage, Route::SwaggerPage, Route::SwaggerFile, Route::RedocPage, Route::RedocScript];

    #[test]
    fn the_openapi_document_lists_exactly_the_routes_served() {
        let served: BTreeSet<(String, String)> = TABLE
            .iter()
            .filter(|(_, route)| !DOCUMENTATION.contains(route))
            .flat_map(|(path, route)| route.allow().split(", ").map(|m| (path.to_string(), m.to_lowercase())))
            .collect();
        let document = crate::openapi::document();
        let documented: BTreeSet<(String, String)> = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| *k != "parameters")
                    .map(|m| (path.clone(), m.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(served, documented);
    }

    #[test]
    fn every_documented_operation_declares_its_error_bodies() {
        let document = crate::openapi::document();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap().iter().filter(|(k, _)| *k != "parameters") {
                let responses = operation["responses"].as_object().unwrap();
                for (status, response) in responses {
                    let has_body = response.get("content").is_some();
                    assert_eq!(has_body, status != "204", "{method} {path} {status}");
                }
                if operation.get("security").is_some() {
                    assert!(responses.contains_key("401"), "{method} {path} is secured but declares no 401");
                }
            }
        }
    }
}
