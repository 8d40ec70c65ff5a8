from gateway.app import create_app
from shared.web import serve

serve("gateway", create_app)
