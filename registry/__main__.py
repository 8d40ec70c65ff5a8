from registry.app import create_app
from shared.web import serve

serve("registry", create_app)
