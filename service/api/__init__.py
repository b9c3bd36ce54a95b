"""HTTP routers, one per resource; `service.api.main` gathers them."""
