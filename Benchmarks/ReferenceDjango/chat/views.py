from rest_framework import generics, serializers
from rest_framework.pagination import CursorPagination

from .models import Chat


class ChatSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Chat
        fields = ["id", "title", "model", "system", "created_at", "updated_at", "last_message_at"]


class NewestFirst(CursorPagination):
    ordering = "-updated_at"
    page_size = 20


class ChatListView(generics.ListAPIView):
    serializer_class = ChatSummarySerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        return Chat.objects.filter(user=self.request.user)
