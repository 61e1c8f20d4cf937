from django.core.management.base import BaseCommand
from rest_framework_simplejwt.tokens import RefreshToken

from authentication.models import User
from chat.models import Chat


class Command(BaseCommand):
    help = "Creates a user with N chats and prints an access token for them."

    def add_arguments(self, parser):
        parser.add_argument("--chats", type=int, default=20)

    def handle(self, *args, chats, **options):
        user = User.objects.create_user(username="bench", email="bench@example.com", password="benchmark-password")
        Chat.objects.bulk_create([Chat(user=user, title=f"Chat {i}") for i in range(chats)])
        self.stdout.write(str(RefreshToken.for_user(user).access_token))
