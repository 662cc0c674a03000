"""Locustfile of `vhil load`, also what a remote worker runs (docs/load.md):

    locust -f loadtest/locustfile.py --worker --master-host MASTER --master-port PORT

The controller in the master process drives the users through custom messages; nothing here runs on its own.
"""
from loadtest.users import ChurnUser, PublisherUser, SlowSubscriberUser, SubscriberUser

__all__ = ["ChurnUser", "PublisherUser", "SlowSubscriberUser", "SubscriberUser"]
