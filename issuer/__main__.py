from issuer.app import create_app
from shared.web import serve

serve("issuer", create_app)
