from django.urls import path

from chat.views import ChatListView

urlpatterns = [path("api/chat/", ChatListView.as_view())]
